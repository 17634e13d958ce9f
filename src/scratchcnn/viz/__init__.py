"""Pictures of a network and its runs: matplotlib figures, the HTML report, the offline explorer page."""
