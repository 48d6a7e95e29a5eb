"""Navigation flows: path and segment rules, the transition graph, ranking, speculation rules."""
