from mmrag.commands.app import main

main()
