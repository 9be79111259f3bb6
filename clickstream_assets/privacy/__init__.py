"""Privacy requests (delete, suppress, unsuppress a person): what they are, where they come
from, how a warehouse honours them and how loads keep honouring them. docs/privacy.md."""
