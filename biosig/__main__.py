"""``python -m biosig`` (and ``torchrun … -m biosig``)."""

from .cli import run

run()
