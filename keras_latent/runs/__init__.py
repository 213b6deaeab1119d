"""Run folders: every file name (`layout`), reading and writing the records (`records`), and the
folder's lifecycle: new, interrupted, finished, overwritten (`lifecycle`). No TensorFlow import."""
