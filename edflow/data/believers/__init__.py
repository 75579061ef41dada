"""edflow 0.4's import path for the MetaDataset (``edflow.data.believers.meta``)."""
