"""The application layer, beside the CLI: what `tds` commands do with a user's files.

Loading model files and formatting their errors (`modelfile`, `tracefile`), the reports behind
`tds viz`, `tds summary` and `tds paths` (`viz_report`, `paths_report`), and training a model file
into a run folder (`train_run`). It may import every layer below it (the library and viz);
nothing below imports it.
"""
