from claude_gateway.cli import main

main()
