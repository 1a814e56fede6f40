"""The web console (`/console`): server-rendered pages over the same package logic as the API."""
