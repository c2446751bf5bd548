from .cli import main

main(prog_name="jcdiag")     # `python -m collector` is jcdiag: same help, same completion variable
