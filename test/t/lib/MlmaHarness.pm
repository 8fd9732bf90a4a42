# Copyright (c) mlma contributors
#
# MlmaHarness.pm
#	  What the TAP tests share about the processes they start with IPC::Run.
package MlmaHarness;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw(usleep time);

our @EXPORT = qw(wait_ended);

# Wait up to $seconds for harness $h to end, pumping its output; true when
# it ended.  The process may end between pumpable and pump_nb: IPC::Run then
# says "process ended prematurely", which only means it is done.
sub wait_ended
{
	my ($h, $seconds) = @_;
	my $deadline = time + $seconds;
	while ($h->pumpable && time < $deadline)
	{
		last unless eval { $h->pump_nb; 1 };
		usleep(20_000);
	}
	return !$h->pumpable;
}

1;
