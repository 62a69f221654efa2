"""Domain services of the CA core: the rules and transactions behind every interface."""
