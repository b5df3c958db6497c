"""Evaluation: metrics per case (`evaluate`), method comparison (`leaderboard`), pictures (`overlay`).

- ``labels``: which voxel values are kidney / tumor / cyst, and the structures evaluated;
- ``metrics``: Dice, surface distances, volumes, KiTS Surface Dice, tumor detection of one case;
- ``surface_dice``: KiTS21/23's Surface Dice tolerances and surface elements (DeepMind's definition);
- ``cases``: finding and reading label files, geometry checks;
- ``evaluate``: many cases -> per-case CSV and summary JSON;
- ``leaderboard``: methods from nnU-Net result folders -> Table-I-style comparison;
- ``scope``: whether a leaderboard's numbers are end-to-end on whole CTs or on ROIs (optimistic);
- ``overlay``: representative slices of a case with every method's outlines.
"""
