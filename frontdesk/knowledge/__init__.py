"""The business's own knowledge: the files a profile lists, indexed for answering callers."""
