"""RegistryPusher: pushes a blessed model into a TF-Serving-layout registry with its profile.

``component.RegistryPusher`` is the TFX component; ``registry`` is the on-disk layout, usable
without TensorFlow (the package itself imports nothing heavy).
"""
