import warnings
import matplotlib
matplotlib.use('Agg')
warnings.filterwarnings('ignore', message='.*Kernel is running over TCP.*')
