"""jellyzoo: a model zoo of spiking neural networks on spikingjelly 2.0 and PyTorch.

`kernels/` and `datasets/` are installed as `zoo.kernels` and `zoo.datasets` so that nothing named
`kernels` or `datasets` lands in site-packages.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _subpackages(folder: str, installed_as: str) -> dict[str, str]:
    """Map every package below `folder` to its installed name under `installed_as`."""
    mapping = {installed_as: folder}
    for package in find_packages(where=folder):
        mapping[f"{installed_as}.{package}"] = f"{folder}/{package.replace('.', '/')}"
    return mapping


PACKAGE_DIR = {
    **{package: package.replace(".", "/") for package in find_packages(include=["zoo", "zoo.*"])},
    **_subpackages("kernels", "zoo.kernels"),
    **_subpackages("datasets", "zoo.datasets"),
}

setup(
    name="jellyzoo",
    version="0.1.0",
    description="Published spiking neural networks as fast, faithful PyTorch modules",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=sorted(PACKAGE_DIR),
    package_dir=PACKAGE_DIR,
    package_data={"zoo.kernels": ["*.cu", "*.cuh"]},
    install_requires=[
        "torch>=2.6",
        "torchvision",
        "torchaudio",
        "spikingjelly==2.0.0",
        "numpy",
        "h5py",
        "tqdm",
        "matplotlib",
        "tensorboard",
        "soundfile",
    ],
    extras_require={
        "cuda13": ["cupy-cuda13x"],
        "cuda12": ["cupy-cuda12x"],
        "dev": ["pytest", "ruff"],
    },
)
