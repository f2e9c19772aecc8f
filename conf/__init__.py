"""The Hydra configs (`*.yaml` here and in the group folders), installed as the package `restoregan.conf` so that
the commands find them from any folder (config_path="pkg://restoregan.conf", src/entry.py)."""
