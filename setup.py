"""Installs nnunet-ppm: the 3D_FCN_PPM network of Yang et al. (ICPR 2018) as an nnU-Net v2 plugin.

`dataset_conversion/` and `postprocessing/` live at the top of the repository but
install as `nnunet_ppm.dataset_conversion` and `nnunet_ppm.postprocessing`, so no
generic top-level name lands in site-packages.

Besides the package, the install writes `nnunet_ppm-ext-trainer.pth` into
site-packages. Python runs it at start-up; it adds our trainer folder to
`nnUNet_extTrainer`, so `nnUNetv2_train ... -tr PPMTrainer` finds our trainers
without any setup by the user (see nnunet_ppm/nnunet_env.py).
"""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

STARTUP_PTH = "nnunet_ppm-ext-trainer.pth"
STARTUP_CODE = "import nnunet_ppm.nnunet_env as nnunet_ppm_env; nnunet_ppm_env.register_ext_trainer_dir()\n"


class BuildPyWithStartupPth(build_py):
    """build_py that also writes the start-up .pth file (one line of code) at the root of the installed tree."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            # editable wheels are assembled from the install command's lib folder
            target_root = self.get_finalized_command("install").install_lib
        else:
            target_root = self.build_lib
        os.makedirs(target_root, exist_ok=True)
        with open(os.path.join(target_root, STARTUP_PTH), "w", encoding="utf-8") as pth:
            pth.write(STARTUP_CODE)


subpackage_roots = {"nnunet_ppm.dataset_conversion": "dataset_conversion",
                    "nnunet_ppm.postprocessing": "postprocessing"}
packages = find_packages(include=["nnunet_ppm", "nnunet_ppm.*"])
for package, folder in subpackage_roots.items():
    packages += [package] + [f"{package}.{sub}" for sub in find_packages(folder)]

setup(
    name="nnunet-ppm",
    version="0.1.0",
    description="3D_FCN_PPM (Yang et al., ICPR 2018) kidney and renal tumor segmentation as an nnU-Net v2 plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=packages,
    package_dir=subpackage_roots,
    cmdclass={"build_py": BuildPyWithStartupPth},
    install_requires=[
        "nnunetv2>=2.8,<2.9",
        "torch",
        "SimpleITK",
        "pydensecrf2",
        "numpy",
        "batchgenerators",
        "scipy",
        "connected-components-3d",
        "matplotlib",
        "tqdm",
        "surface-distance",  # DeepMind's surfel table, as KiTS21/23 use it for the Surface Dice
    ],
    # pytest 9.2 renamed the node id attribute that pytest-xdist 3.8's --dist loadgroup sets (Item._nodeid), so
    # its groups are ignored there: each xdist worker would then build the demo's smoke run again
    # dicom: predict-ct --dicom-seg (DICOM Segmentation objects); the tests check those too
    extras_require={"dicom": ["highdicom>=0.22"],
                    "test": ["pytest>=8,<9.2", "pytest-timeout", "pytest-xdist>=3.5", "highdicom>=0.22"]},
    entry_points={"console_scripts": ["nnunet_ppm=nnunet_ppm.cli:main"]},
)
