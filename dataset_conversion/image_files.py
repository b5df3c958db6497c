"""Reading and writing images and label maps.

Anything SimpleITK reads is accepted: NIfTI (.nii.gz, .nii), NRRD (.nrrd, .nhdr),
MetaImage (.mha, .mhd), or a folder holding exactly one DICOM series (images only).
Outputs are written compressed.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple, Union

import SimpleITK as sitk

IMAGE_FILE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ImageHeader:
    """Geometry of an image, in SimpleITK index order (x, y, z)."""

    size: Tuple[int, ...]
    spacing: Tuple[float, ...]
    origin: Tuple[float, ...]
    direction: Tuple[float, ...]
    components: int

    @property
    def dimension(self) -> int:
        return len(self.size)


def file_ending(path: PathLike) -> str:
    """The image file ending of `path` ('.nii.gz', '.nrrd', ...), or '' when it has none of IMAGE_FILE_ENDINGS."""
    name = Path(path).name.lower()
    return next((ending for ending in IMAGE_FILE_ENDINGS if name.endswith(ending)), "")


def _dicom_series_files(folder: Path) -> Tuple[str, ...]:
    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(series) != 1:
        raise ValueError(f"{folder} holds {len(series)} DICOM series, expected exactly one")
    return tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))


def read_image(path: PathLike) -> sitk.Image:
    """Read an image file or a DICOM series folder."""
    path = Path(path)
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(_dicom_series_files(path))
        return reader.Execute()
    return sitk.ReadImage(str(path))


def read_header(path: PathLike) -> ImageHeader:
    """Geometry of an image file without reading its voxels (a DICOM series is read whole)."""
    path = Path(path)
    if path.is_dir():
        image = read_image(path)
        source, components = image, image.GetNumberOfComponentsPerPixel()
    else:
        source = sitk.ImageFileReader()
        source.SetFileName(str(path))
        source.ReadImageInformation()
        components = source.GetNumberOfComponents()
    return ImageHeader(tuple(source.GetSize()), tuple(source.GetSpacing()), tuple(source.GetOrigin()),
                       tuple(source.GetDirection()), components)


def write_image(image: sitk.Image, path: PathLike) -> None:
    """Write `image` compressed (fast zlib level for NIfTI and friends)."""
    sitk.WriteImage(image, str(path), True, 1)
