"""The annvq HTTP service: FastAPI over `annvq.Collection`, one sub-directory of the data dir per
collection. Build the app with `service.app.create_app`; `annvq serve` runs it under uvicorn."""
