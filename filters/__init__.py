"""Steps that keep, drop or score documents: language ID, heuristic quality rules, quality scores."""
