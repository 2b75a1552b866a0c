package synth

import "fmt"

// TorchTensor is one tensor of a state dict WriteTorchStateDict saves.
type TorchTensor struct {
	Name string
	// StorageType is the torch storage class torch.save names for the
	// tensor's dtype: "FloatStorage", "BFloat16Storage", "HalfStorage",
	// "LongStorage", ...
	StorageType string
	Shape       []int64
	// Data is the tensor's bytes, little-endian: exactly the product of
	// Shape elements of StorageType's element size.
	Data []byte
}

// torchStorageSizes are the element sizes of the storage classes
// WriteTorchStateDict writes.
var torchStorageSizes = map[string]int64{
	"DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
	"LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
}

// WriteTorchStateDict writes path as torch.save(state_dict, path) does
// since torch 2.1 (the layout of writeTorchSave): a dict of the tensors by
// name, in order, each tensor its own storage, keyed "0", "1", ... in that
// order. It is pytorch_model.bin as Trainer writes it with
// save_safetensors=False.
func WriteTorchStateDict(path string, tensors []TorchTensor) error {
	var keys storageKeys
	var state pyDict
	var storages []torchStorage
	for _, t := range tensors {
		elem, ok := torchStorageSizes[t.StorageType]
		if !ok {
			return fmt.Errorf("synth: tensor %q: storage type %q", t.Name, t.StorageType)
		}
		numel := int64(1)
		for _, d := range t.Shape {
			numel *= d
		}
		if int64(len(t.Data)) != numel*elem {
			return fmt.Errorf("synth: tensor %q: %d bytes, shape %v of %s calls for %d", t.Name, len(t.Data), t.Shape, t.StorageType, numel*elem)
		}
		key := keys.next()
		storages = append(storages, bytesStorage(key, t.Data))
		state = append(state, pyItem{t.Name, torchTensor(t.StorageType, key, numel, t.Shape)})
	}
	return writeTorchSave(path, pickleProtocol2(state), storages)
}
