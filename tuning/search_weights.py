"""`python tuning/search_weights.py`: the documented entry point of the loss-weight search.

A thin wrapper around `keras_latent.search_weights` (also `python -m keras_latent.search_weights` and
`keras-latent-search-weights`); needs the package installed (`pip install -r requirements.txt`).
"""
from keras_latent.cli import run_cli
from keras_latent.search_weights import main

if __name__ == "__main__":
    run_cli(main)
