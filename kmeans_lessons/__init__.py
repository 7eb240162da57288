__version__ = "0.1.0"
from .data import *
from .distances import *
from .assign import *
from .update import *
from .kmeans import *
