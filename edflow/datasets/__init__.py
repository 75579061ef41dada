"""edflow 0.4's datasets (``edflow.datasets.{mnist, fashionmnist, cifar, celeba}``) read from the files edflow kept
in its data cache, ``$EDDATA_CACHE/<NAME>/`` (default ``~/.eddata_cache/<NAME>/``). Nothing is downloaded: a
missing file is an error that says where to put it. Also the file-format readers the project's datasets share."""
