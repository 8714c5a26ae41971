"""`python -m videop2p`: the `videop2p` command, where its script is not on the PATH (a Windows user's
`Scripts` folder, a virtual environment not activated)."""

from videop2p.cli import main

if __name__ == "__main__":
    main()
