"""Methods turn images into saliency maps: trainable SOD networks and SAM with mask selection."""
