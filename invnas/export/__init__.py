"""invnas.export"""
