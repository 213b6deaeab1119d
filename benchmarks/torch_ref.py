"""PyTorch eager reference for the CIFAR-10 classifier + decoder (performance anchor).

Model: trunk conv(3->6,5) relu pool2, conv(6->16,5) relu pool2 -> latent 16x5x5;
head flatten 400 -> 120 relu -> 84 relu -> 10 (logits); decoder
ConvTranspose(16->6, k6, s2) relu [5->14], ConvTranspose(6->3, k6, s2) tanh [14->32].
Loss = 1.0 * cross-entropy + 2.0 * MSE(recon, input); SGD momentum 0.9 (lr 0.01 by default);
with --layer-decoder (what `python -m keras_latent.train` trains by default: its `reconstruction_conv1` output)
also + W * MSE(tanh(dec2(conv1 block's activations)), input), dec2 shared (keras_latent's deconv1), W =
--layer-recon-weight (1.0, keras_latent's default);
inputs scaled to [-1, 1] ((x/255 - 0.5) / 0.5), as in the PyTorch CIFAR-10 tutorial.
Data: a folder in the CIFAR-10 python layout (data_batch_* for training, test_batch for test);
by default the CIFAR-10 sample bundled with keras_latent (keras_latent/data/sample_data/).

Set-up, once, in its own virtual environment (the CPU build of torch 2.13.0; keras_latent is imported from
this checkout for its CIFAR reader, which needs only numpy):
    python3 -m venv ~/torchvenv && ~/torchvenv/bin/pip install torch==2.13.0 numpy
Run (about 10 s an epoch-set on 2 cores at batch 128), or through benchmarks/train_throughput.py:
    ~/torchvenv/bin/python benchmarks/torch_ref.py --batch-size 128 --epochs 10

Prints one JSON line: training images/s over epochs 2..E (epoch 1 is warm-up); with --whole-epochs, which
evaluates the test split (loss and accuracy, in batches) after every epoch as the seed does, also
whole_epoch_images_per_s, whole epochs (training and evaluation) over epochs 2..E; test
accuracy, test reconstruction MSE (in [-1,1] units), peak RSS, and the masked-decoding
timings (16 one-channel latents of one image: one batched call vs a loop of 16 calls; always
run on the eager module, also with --compile).
"""
import argparse
import glob
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout, for keras_latent
from keras_latent.data.cifar import read_batch  # noqa: E402 (numpy and the standard library only)
from keras_latent.machine import resident_mb  # noqa: E402 (the standard library only)


class Net(nn.Module):
    def __init__(self, layer_decoder=False):
        super().__init__()
        self.layer_decoder = layer_decoder  # forward also returns dec2's image of the conv1 block (else None)
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.dec1 = nn.ConvTranspose2d(16, 6, 6, stride=2)  # 5x5 -> 14x14
        self.dec2 = nn.ConvTranspose2d(6, 3, 6, stride=2)   # 14x14 -> 32x32

    def encode(self, x, with_first=False):
        h1 = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 14, 14): the conv1 block's activations
        z = F.max_pool2d(F.relu(self.conv2(h1)), 2)
        return (z, h1) if with_first else z

    def classify(self, z):
        h = F.relu(self.fc1(torch.flatten(z, 1)))
        return self.fc3(F.relu(self.fc2(h)))

    def decode(self, z):
        return torch.tanh(self.dec2(F.relu(self.dec1(z))))

    def forward(self, x):
        z, h1 = self.encode(x, with_first=True)
        layer_rec = torch.tanh(self.dec2(h1)) if self.layer_decoder else None  # keras_latent's reconstruction_conv1
        return self.classify(z), self.decode(z), layer_rec


def read_batches(paths):
    """CIFAR batch files -> (N, 3, 32, 32) uint8 images and labels, read by keras_latent.data.cifar (a restricted
    unpickler that needs only numpy: a crafted batch file runs no code)."""
    xs, ys = [], []
    for p in sorted(paths):
        images, labels = read_batch(p)  # (N, 32, 32, 3)
        xs.append(images.transpose(0, 3, 1, 2))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def load(folder):
    """(x_train, y_train, x_test, y_test) of a CIFAR-layout folder (data_batch_*, test_batch) or of an image folder
    with train/ and test/ (read by keras_latent.data.images: Pillow, every file checked), as float tensors in
    [-1, 1] (N, 3, 32, 32) and int64 labels."""
    norm = lambda a: torch.from_numpy(a).float().div(255).sub(0.5).div(0.5).contiguous()
    if glob.glob(os.path.join(folder, "data_batch_*")):
        x_tr, y_tr = read_batches(glob.glob(os.path.join(folder, "data_batch_*")))
        x_te, y_te = read_batches([os.path.join(folder, "test_batch")])
    else:
        from keras_latent.data.images import load_image_folder  # numpy and Pillow

        d = load_image_folder(folder, 32, 0.2, 0)
        x_tr, y_tr = d["x_train"].transpose(0, 3, 1, 2), d["y_train"]
        x_te, y_te = d["x_test"].transpose(0, 3, 1, 2), d["y_test"]
    return norm(x_tr), torch.from_numpy(y_tr), norm(x_te), torch.from_numpy(y_te)


def evaluate(model, x, y, batch_size, layer_recon_weight):
    """(test loss, test accuracy) over the whole split in batches: what the seed (and Keras's validation pass)
    computes after every epoch."""
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            outputs = model(xb)
            loss += loss_of(outputs, xb, yb, layer_recon_weight).item() * len(xb)
            correct += (outputs[0].argmax(1) == yb).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def batches(x, y, bs, loader, gen):
    if loader == "dataloader":  # as in the tutorial (num_workers=0: data is already tensors)
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=bs,
                                           shuffle=True, generator=gen)
    perm = torch.randperm(len(x), generator=gen)  # plain tensor slicing
    return ((x[i], y[i]) for i in (perm[j:j + bs] for j in range(0, len(x), bs)))


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_ms(fn, reps):
    for _ in range(10):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return {"min": round(min(ts), 4), "median": round(statistics.median(ts), 4)}


def masked_decode_bench(model, x1, reps):
    eye = torch.eye(16).view(16, 16, 1, 1)  # variant k keeps only latent channel k

    def batched():
        return model.decode(model.encode(x1) * eye)  # one call, batch of 16

    def looped():
        z = model.encode(x1)
        return torch.cat([model.decode(z * eye[k:k + 1]) for k in range(16)])

    with torch.inference_mode():
        torch.testing.assert_close(batched(), looped(), rtol=1e-4, atol=1e-5)
        return {"batched_ms": time_ms(batched, reps), "loop16_ms": time_ms(looped, reps)}


def loss_of(outputs, x, y, layer_recon_weight):
    """1 x cross-entropy + 2 x MSE(recon, x) (+ layer_recon_weight x MSE(layer recon, x) with the layer decoder)."""
    logits, rec, layer_rec = outputs
    loss = F.cross_entropy(logits, y) + 2.0 * F.mse_loss(rec, x)
    return loss if layer_rec is None else loss + layer_recon_weight * F.mse_loss(layer_rec, x)


def train_flops_per_image(model, x, y, layer_recon_weight):
    """Forward+backward FLOPs (conv/linear/matmul only) of one training step, per image."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        loss_of(model(x), x, y, layer_recon_weight).backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / len(x)


def main():
    import_rss_mb = resident_mb()  # torch loaded, nothing trained yet
    p = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--data", default=os.path.join(here, "..", "keras_latent", "data", "sample_data",
                                                  "cifar-10-batches-py"))
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--loader", choices=["dataloader", "tensors"], default="dataloader")
    p.add_argument("--compile", action="store_true", help="train torch.compile(model)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--layer-decoder", action="store_true",
                   help="also train dec2 on the conv1 block's activations, as keras_latent's default model does")
    p.add_argument("--layer-recon-weight", type=float, default=1.0, help="its loss weight (keras_latent's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--whole-epochs", action="store_true",
                   help="evaluate the test split after every epoch, as the seed does (and Keras's validation "
                        "pass); whole_epoch_images_per_s then times whole epochs, evaluation included")
    p.add_argument("--masked-reps", type=int, default=100)
    p.add_argument("--out", help="append the JSON line to this file")
    a = p.parse_args()

    torch.manual_seed(a.seed)
    x_tr, y_tr, x_te, y_te = load(a.data)
    model = Net(layer_decoder=a.layer_decoder)
    flops = train_flops_per_image(model, x_tr[:a.batch_size], y_tr[:a.batch_size], a.layer_recon_weight)
    net = model
    if a.compile:
        net = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(a.seed)

    epoch_s, whole_s, train_cpu_s, losses, test_history = [], [], [], [], []
    model.train()
    for _epoch in range(a.epochs):
        t0, cpu0, running, steps = time.perf_counter(), cpu_s(), 0.0, 0
        for xb, yb in batches(x_tr, y_tr, a.batch_size, a.loader, gen):
            opt.zero_grad()
            loss = loss_of(net(xb), xb, yb, a.layer_recon_weight)
            loss.backward()
            opt.step()
            running += loss.item()
            steps += 1
        epoch_s.append(time.perf_counter() - t0)
        train_cpu_s.append(cpu_s() - cpu0)  # the training steps' own, as epoch_s (not the evaluation's)
        losses.append(running / steps)
        if a.whole_epochs:
            test_history.append([round(v, 4) for v in evaluate(model, x_te, y_te, a.batch_size,
                                                                a.layer_recon_weight)])
        whole_s.append(time.perf_counter() - t0)
    cores_busy = sum(train_cpu_s[1:]) / sum(epoch_s[1:]) if a.epochs > 1 else None

    model.eval()
    correct, squared = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(x_te), 1000):  # in slices: the whole 10,000-image split at once needs ~1 GB
            logits, rec, _ = model(x_te[i:i + 1000])
            correct += (logits.argmax(1) == y_te[i:i + 1000]).sum().item()
            squared += F.mse_loss(rec, x_te[i:i + 1000], reduction="sum").item()
    acc, rec_mse = correct / len(x_te), squared / x_te.numel()

    timed = epoch_s[1:] or epoch_s
    ips = len(x_tr) * len(timed) / sum(timed)
    whole = whole_s[1:] or whole_s
    res = {
        "framework": "torch", "version": torch.__version__, "threads": torch.get_num_threads(),
        "config": f"torch {'compile' if a.compile else 'eager'} {a.loader} b{a.batch_size} lr{a.lr}"
                  + (f" layer-decoder w{a.layer_recon_weight:g}" if a.layer_decoder else ""),
        "layer_decoder": a.layer_decoder, "capability": torch.backends.cpu.get_cpu_capability(),
        "batch_size": a.batch_size, "epochs": a.epochs, "steps_per_epoch": steps,
        "images_per_s": round(ips, 1),
        "whole_epoch_images_per_s": round(len(x_tr) * len(whole) / sum(whole), 1) if a.whole_epochs else None,
        "whole_epoch_s": [round(t, 3) for t in whole_s], "test_loss_accuracy": test_history,
        "train_images": len(x_tr), "test_images": len(x_te),
        "ms_per_step": round(1e3 * sum(timed) / len(timed) / steps, 3),
        "cores_busy": cores_busy and round(cores_busy, 2),
        "first_epoch_s": round(epoch_s[0], 2), "epoch_s": [round(t, 3) for t in epoch_s],
        "train_mflop_per_image": round(flops / 1e6, 3), "gflop_per_s": round(ips * flops / 1e9, 2),
        "train_loss": [round(v, 4) for v in losses],
        "test_acc": round(acc, 4), "test_recon_mse": round(rec_mse, 5),
        "masked_decode": masked_decode_bench(model, x_te[:1], a.masked_reps),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "import_rss_mb": import_rss_mb and round(import_rss_mb, 1),
    }
    line = json.dumps(res)
    print(line)
    if a.out:
        with open(a.out, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
