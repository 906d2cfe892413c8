"""Contains all the data models used in inputs/outputs"""

from .document import Document
from .document_list import DocumentList
from .error import Error
from .new_document import NewDocument
from .rate_limited import RateLimited

__all__ = (
    "Document",
    "DocumentList",
    "Error",
    "NewDocument",
    "RateLimited",
)
