"""The web layer: shared dependencies and schemas, and one router per resource under
``routes``; ``churnlens.serving.app.create_app`` assembles them."""
