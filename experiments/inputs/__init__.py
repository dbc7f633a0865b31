"""Turning data into batches: the feature cache, the decoded-sample cache, tables' preprocessing."""
