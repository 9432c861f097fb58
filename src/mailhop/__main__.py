from mailhop.cli.main import main

main()
