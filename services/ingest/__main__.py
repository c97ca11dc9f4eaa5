from services.ingest.bootstrap import build_app
from shared.service import serve

serve("ingest", build_app)
