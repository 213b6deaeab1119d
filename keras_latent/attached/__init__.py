"""Decoders attached to a user's own trained Keras convnet (issue 22): safe reading of the model file,
its graph rebuilt around chosen layers, post-hoc decoders trained on frozen features, and their
faithfulness (MSE, PSNR, mean image, Dosovitskiy & Brox's normalized error)."""
from keras_latent._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "load_user_model": "reading", "weights_digest": "reading", "file_sha256": "reading", "ImageSpec": "reading",
    "UserModel": "reading", "ModelGraph": "graph", "train_decoders": "decoders", "build_decoder": "decoders",
    "attached_model": "decoders", "decode": "decoders", "faithfulness_table": "faithfulness",
    "measure_faithfulness": "faithfulness", "prepare_images": "reading", "to_model_input": "reading",
})
