# Loaded as a conftest (not with -p) so that coverage is already measuring when eventlab is
# imported.
pytest_plugins = ["eventlab.testing", "pytester"]
