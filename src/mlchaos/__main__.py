from mlchaos.cli import main

main()
