from edflow.data.batches import fetch_batch
from edflow.data.dataset import (ArrayDataset, ConcatenatedDataset, DatasetMixin, ExampleDataset, PRNGMixin,
                                 ProcessedDataset, SubDataset)

__all__ = ["ArrayDataset", "DatasetMixin", "SubDataset", "ConcatenatedDataset", "ProcessedDataset", "ExampleDataset",
           "PRNGMixin", "fetch_batch"]
