#!/usr/bin/python3
"""Write the torch.save fixtures of testdata/torch/ with real PyTorch.

Run with Debian's PyTorch (apt-get install -y python3-torch libopenblas0-pthread):

    /usr/bin/python3 scripts/gen-torch-fixtures.py testdata/torch

Each zip fixture X gets a sidecar X.json with what torch itself says about
every storage: the dtype and byte size of the storage torch.load rebuilt
from record data/<key>, and where that record's bytes start in the file
(from Python's zipfile and the record's local header). The layout tests
compare ParseTorchZip with these sidecars.

The .distcp fixture is laid out as torch.distributed.checkpoint's
FileSystemWriter (torch >= 2.0, serialization format TORCH_SAVE) lays out a
rank's file: every item written with torch.save into the one stream, one
after the other, and a .metadata pickle of Metadata whose storage_data maps
each MetadataIndex to a _StorageInfo(relative_path, offset, length). The
Debian torch (1.13) cannot import its own torch.distributed checkpoint
package under Python 3.11, so this script writes the items with the same
torch.save calls and pickles the metadata with stand-in classes that carry
torch's module and class names, which is all a pickle records of them.
"""

import dataclasses
import io
import json
import os
import struct
import sys
import types
import zipfile
from collections import OrderedDict

import torch

torch.manual_seed(12)


def local_data_offset(path, info, base=0):
    """Where the bytes of a zip record start: after its local header."""
    with open(path, "rb") as f:
        f.seek(base + info.header_offset)
        header = f.read(30)
    sig, = struct.unpack_from("<I", header, 0)
    assert sig == 0x04034B50, "no local header"
    name_len, extra_len = struct.unpack_from("<HH", header, 26)
    return base + info.header_offset + 30 + name_len + extra_len


class RecordingReader:
    """Wraps torch's zip reader to learn which record each storage came from."""

    real = torch._C.PyTorchFileReader
    storages = {}

    def __init__(self, *args):
        self._reader = RecordingReader.real(*args)

    def get_storage_from_record(self, name, numel, cls):
        storage = self._reader.get_storage_from_record(name, numel, cls)
        RecordingReader.storages[storage.storage().data_ptr()] = name
        return storage

    def __getattr__(self, attr):
        return getattr(self._reader, attr)


def tensors_of(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors_of(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors_of(v)


def describe(path, base=0, length=None):
    """The storages of the torch.save archive at [base, base+length) of path,
    as torch.load and zipfile see them."""
    with open(path, "rb") as f:
        f.seek(base)
        data = f.read(length) if length is not None else f.read()
    RecordingReader.storages = {}
    torch._C.PyTorchFileReader = RecordingReader
    try:
        loaded = torch.load(io.BytesIO(data))
    finally:
        torch._C.PyTorchFileReader = RecordingReader.real
    z = zipfile.ZipFile(io.BytesIO(data))
    infos = {i.filename: i for i in z.infolist()}
    prefix = z.infolist()[0].filename.split("/")[0]
    storages = {}
    for t in tensors_of(loaded):
        record = RecordingReader.storages[t.storage().data_ptr()]
        full = prefix + "/" + record
        info = infos[full]
        entry = {
            "key": record[len("data/"):],
            "record": full,
            "dtype": str(t.dtype).removeprefix("torch."),
            "size": t.storage().nbytes(),
            "data_offset": local_data_offset(path, info, base),
        }
        assert entry["size"] == info.file_size, (full, entry["size"], info.file_size)
        if full in storages:
            assert storages[full] == entry, (storages[full], entry)
        storages[full] = entry
    records = sorted(storages.values(), key=lambda e: e["data_offset"])
    return {"prefix": prefix, "records": len(infos), "storages": records}


def write(out, name, obj, **kwargs):
    path = os.path.join(out, name)
    torch.save(obj, path, **kwargs)
    return path


def sidecar(path, desc):
    desc = dict(desc, file=os.path.basename(path), torch=torch.__version__,
                size=os.path.getsize(path))
    with open(path + ".json", "w") as f:
        json.dump(desc, f, indent=1, sort_keys=True)
        f.write("\n")


def state_dict():
    weight = torch.randn(4, 8)
    return OrderedDict([
        ("fc.weight", weight),
        ("fc.bias", torch.randn(4)),
        ("emb.weight", torch.randn(16, 4).to(torch.bfloat16)),
        ("ln.weight", torch.randn(8).to(torch.float16)),
        ("position_ids", torch.arange(16, dtype=torch.int64).unsqueeze(0)),
        ("mask", torch.tensor([True, False, True])),
        ("fc.weight_row1", weight[1]),  # a view: shares fc.weight's storage
    ])


def optimizer_state():
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        loss = model(torch.randn(5, 8)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt.state_dict()


# Stand-ins for torch.distributed.checkpoint's classes, pickled under
# torch's module and class names.
def checkpoint_classes():
    meta = types.ModuleType("torch.distributed.checkpoint.metadata")
    fs = types.ModuleType("torch.distributed.checkpoint.filesystem")
    pkg = types.ModuleType("torch.distributed.checkpoint")
    pkg.metadata, pkg.filesystem = meta, fs

    def dc(module, name, fields, frozen=False):
        cls = dataclasses.make_dataclass(name, fields, frozen=frozen)
        cls.__module__ = module.__name__
        cls.__qualname__ = name
        setattr(module, name, cls)
        return cls

    classes = types.SimpleNamespace(
        Metadata=dc(meta, "Metadata", ["state_dict_metadata", "planner_data", "storage_data"]),
        MetadataIndex=dc(meta, "MetadataIndex", ["fqn", "offset", "index"], frozen=True),
        TensorProperties=dc(meta, "TensorProperties",
                            ["dtype", "layout", "requires_grad", "memory_format", "pin_memory"]),
        ChunkStorageMetadata=dc(meta, "ChunkStorageMetadata", ["offsets", "sizes"]),
        TensorStorageMetadata=dc(meta, "TensorStorageMetadata", ["properties", "size", "chunks"]),
        BytesStorageMetadata=dc(meta, "BytesStorageMetadata", []),
        _StorageInfo=dc(fs, "_StorageInfo", ["relative_path", "offset", "length"]),
    )
    sys.modules.update({pkg.__name__: pkg, meta.__name__: meta, fs.__name__: fs})
    return classes


def write_distcp(out):
    c = checkpoint_classes()
    file_name = "__0_0.distcp"
    path = os.path.join(out, file_name)
    sd = OrderedDict([
        ("model.embed", torch.randn(8, 4).to(torch.bfloat16)),
        ("model.proj", torch.randn(4, 4)),
        ("step", 7),  # not a tensor: a BYTE_IO item, torch.save'd into bytes
        ("model.norm", torch.randn(4)),
    ])
    state_meta, storage_data, items = {}, {}, []
    with open(path, "wb") as stream:
        # FileSystemWriter writes the BYTE_IO items first, then the tensors.
        order = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
        order += [k for k, v in sd.items() if isinstance(v, torch.Tensor)]
        for fqn in order:
            value = sd[fqn]
            offset = stream.tell()
            if isinstance(value, torch.Tensor):
                torch.save(value.clone(), stream)
                index = c.MetadataIndex(fqn, torch.Size([0] * value.dim()), 0)
                props = c.TensorProperties(value.dtype, torch.strided, False, torch.contiguous_format, False)
                state_meta[fqn] = c.TensorStorageMetadata(
                    props, value.size(), [c.ChunkStorageMetadata(torch.Size([0] * value.dim()), value.size())])
            else:
                buf = io.BytesIO()
                torch.save(value, buf)
                stream.write(buf.getbuffer())
                index = c.MetadataIndex(fqn, None, None)
                state_meta[fqn] = c.BytesStorageMetadata()
            length = stream.tell() - offset
            storage_data[index] = c._StorageInfo(file_name, offset, length)
            items.append({"fqn": fqn, "offset": offset, "length": length})
    with open(os.path.join(out, ".metadata"), "wb") as f:
        import pickle
        pickle.dump(c.Metadata(state_meta, None, storage_data), f)

    desc = {"items": []}
    for item in items:
        d = describe(path, item["offset"], item["length"])
        desc["items"].append(dict(item, **d))
    sidecar(path, desc)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    path = write(out, "state_dict.pt", state_dict())
    sidecar(path, describe(path))

    path = write(out, "optimizer.pt", optimizer_state())
    sidecar(path, describe(path))

    # torch.save to a buffer names the archive folder "archive".
    buf = io.BytesIO()
    torch.save({"w": torch.randn(3, 5).to(torch.bfloat16), "n": torch.tensor(5)}, buf)
    path = os.path.join(out, "buffer.bin")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    sidecar(path, describe(path))

    # The legacy format: a bare pickle stream, which ParseTorchZip refuses.
    write(out, "legacy.pt", state_dict(), _use_new_zipfile_serialization=False)

    write_distcp(out)

    for name in sorted(os.listdir(out)):
        size = os.path.getsize(os.path.join(out, name))
        assert size < 64 << 10, (name, size)


if __name__ == "__main__":
    main()
