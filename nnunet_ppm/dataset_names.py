"""`-d ID` to nnU-Net's ``DatasetXXX_NAME``, with an error a user can act on instead of a traceback."""


class DatasetNotFoundError(ValueError):
    """No dataset (or more than one) with the given ID in nnUNet_raw / nnUNet_preprocessed / nnUNet_results."""


def dataset_name(dataset: str) -> str:
    """``DatasetXXX_NAME`` of a dataset ID or name, looked up like nnU-Net does; raises DatasetNotFoundError."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError) as error:  # nnU-Net raises RuntimeError naming the folders it looked in
        raise DatasetNotFoundError(f"dataset {dataset!r}: {error}") from error
