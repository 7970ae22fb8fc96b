from exgate.cli import main

main()
