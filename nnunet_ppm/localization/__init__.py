"""Whole-CT kidney localisation (paper section II: ROIs from multi-atlas localisation, its reference [4]).

Modules: ``localizer`` (the interface: CtCase, LocatedKidney, Localization, KidneyLocalizer),
``atlas_localizer`` (multi-atlas registration + majority vote), ``nnunet_localizer`` (a coarse
nnU-Net model), ``boxes_localizer`` (user-given boxes); ``atlas_set`` / ``atlas_selection`` /
``atlas_build`` (CLI ``nnunet_ppm atlas build``), ``registration``, ``fusion``, ``low_resolution``;
``localize_cli`` (CLI ``nnunet_ppm localize``) and ``localizer_options`` (options shared with
``nnunet_ppm predict-ct``).
"""
