from mlchaos.entry import main

main()
