"""Installing: backends into their own virtual environments from the backend gallery (``backends``), and models
from model galleries (``models``)."""
