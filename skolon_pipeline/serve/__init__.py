"""The School Admin web view (`skolon-pipeline serve`): a read-only, server-rendered view of the warehouse in
which each admin sees their own school(s) or school authority, and nothing else (see scope.py)."""
