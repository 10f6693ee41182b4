"""What the tests share: a gateway to start, HTTP and SSE helpers, hostile inputs."""
