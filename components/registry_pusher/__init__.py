"""RegistryPusher: pushes a blessed model into a TF-Serving-layout registry with its profile."""
from components.registry_pusher.component import RegistryPusher

__all__ = ["RegistryPusher"]
