"""kmevents.replay: state at any point, diffs, histories, search, verification, archives."""
