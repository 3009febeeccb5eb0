"""The transport-free core of an ML service: the Service, the Model, encoding rows, windows."""
