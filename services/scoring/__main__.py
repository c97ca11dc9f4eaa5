from services.scoring.bootstrap import build_app
from shared.service import serve

serve("scoring", build_app)
