"""Evaluation: metrics per case (`evaluate`), method comparison (`leaderboard`), pictures (`overlay`).

- ``labels``: which voxel values are kidney / tumor / cyst, and the structures evaluated;
- ``metrics``: Dice, surface distances, volumes, tumor detection of one case;
- ``cases``: finding and reading label files, geometry checks;
- ``evaluate``: many cases -> per-case CSV and summary JSON;
- ``leaderboard``: methods from nnU-Net result folders -> Table-I-style comparison;
- ``overlay``: representative slices of a case with every method's outlines.
"""
