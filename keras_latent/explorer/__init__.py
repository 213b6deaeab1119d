"""The live explorer of a trained run: a local web app that decodes one image with any set of a trunk layer's
channels switched off and classifies it with the same channels zeroed. The model side (`session`), the batching
model thread (`worker`), uploads (`uploads`), the JSON API and page (`app`, `static/`) and the server (`server`)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "ExploreConfig": "config", "Explorer": "session", "create_app": "app", "serve": "server"})
