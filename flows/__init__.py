"""Flows: Prefect wiring of the steps below (retrain, erase, schedules); may import all but the command line."""
