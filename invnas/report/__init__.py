"""invnas.report"""
